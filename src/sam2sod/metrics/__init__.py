"""sam2sod.metrics"""
