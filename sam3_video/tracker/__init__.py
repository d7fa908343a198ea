"""Training SAM3's tracker (memory and propagation) on video clips.

See ../shared/reference/TRACKER_TRAINING.md for the procedure (SAM2-style) and how it maps
onto sam3's tracker classes.
"""
