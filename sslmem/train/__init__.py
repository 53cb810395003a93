"""What trains an encoder: data, splits, augmentation, backbones, methods, the fit loop, DP-SGD,
calibration.

May import: ``sslmem.errors``, ``sslmem.io``.
"""
