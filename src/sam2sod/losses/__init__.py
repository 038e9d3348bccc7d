"""sam2sod.losses"""
