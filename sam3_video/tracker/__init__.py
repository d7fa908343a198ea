"""Training SAM3's tracker (memory and propagation) on video clips.

    model.py     Sam3TrackerTrain (the training layer sam3 0.1.4 lacks) and TrackModel
                 (shared vision backbone + tracker, no backbone weight stored twice)
    prompts.py   per-clip prompt sampling: mask / noisy box / click, correction clicks
    loss.py      the multi-step multi-mask loss (focal, dice, IoU, object score)
    build.py     tiny and sam3 builders (sam3's own classes), trunk freezing
    clips.py     clips of per-object masklets from the native video dataset
    evaluate.py  J&F through sam3's Sam3TrackerPredictor, with and without memory
    export.py    tracker.* weights in the upstream sam3.pt layout

The trainer reaches all of this through sam3_video.tasks.track.TrackTask. See
../shared/reference/TRACKER_TRAINING.md for the procedure (SAM2-style) and its pitfalls.
"""
