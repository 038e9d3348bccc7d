"""sam2sod.evaluation"""
