"""What the detector and the tracker share: the model dims of each preset and the vision
backbone (ViT trunk + necks) they both run on.

    presets.py   Sam3Dims per preset ("tiny", "sam3"), default image size, the ViT patch size
    vision.py    the ViT trunk and its ViTDet neck (plus the tracker's SAM2 neck), sine
                 position encodings; built from the `sam3` package's classes for any preset
"""
