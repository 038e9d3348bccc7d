"""sam2sod.train"""
