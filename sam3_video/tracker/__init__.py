"""The `track` task: training SAM3's tracker (memory and propagation) on video clips.

    model.py     Sam3TrackerTrain (the training layer sam3 0.1.4 lacks) and TrackModel
                 (shared vision backbone + tracker, no backbone weight stored twice)
    build.py     tiny and sam3 builders (sam3's own classes), trunk freezing
    prompts.py   per-clip prompt sampling: mask / noisy box / click, correction clicks
    clips.py     clips of per-object masklets from the native video dataset
    loss.py      the multi-step multi-mask loss (focal, dice, IoU, object score)
    evaluate.py  J&F through sam3's Sam3TrackerPredictor, with and without memory
    export.py    tracker.* weights in the upstream sam3.pt layout, into sam3's predictor
    task.py      TrackTask: the above behind the trainer's and evaluator's Task interface

The procedure is SAM2's: each clip is prompted on its first frame (and up to
`track.max_cond_frames - 1` more) with a ground-truth mask, a noisy box or a click; box and
click clips get correction clicks sampled from the error region; every frame is then
predicted from the memory of the previous ones and supervised with the loss of loss.py.
Its pitfall: a tracker that segments from the high-resolution skip features alone scores
well without using its memory, so evaluation also reports J&F with memory disabled.
"""
