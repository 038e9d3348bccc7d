"""sam2sod.infer"""
