"""sam2sod.data"""
