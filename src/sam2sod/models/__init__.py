"""sam2sod.models"""
