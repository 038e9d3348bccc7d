"""sam2sod.engine"""
