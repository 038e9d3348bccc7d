"""sam2sod.runs"""
