"""The `detect` task: SAM3's detector (grounding a noun phrase on every frame of a clip)
trained on multi-frame clips.

    model.py     VideoSam3: Sam3Image with a batched multi-frame forward (and the per-frame
                 reference loop it must match)
    build.py     build_model: VideoSam3 for a ModelConfig from sam3's classes (any preset),
                 initial weights loaded, freezing applied
    loss.py      the detection loss of the upstream fine-tune config (Sam3LossWrapper)
    evaluate.py  predict (per-frame detections over a dataset) and score (per-frame COCO AP;
                 video metrics of the linked masklets)
    task.py      DetectTask: the above behind the trainer's and evaluator's Task interface

    model = build_model(cfg.model, image_size)         # VideoSam3, CPU, train mode
    loss_fn = build_detection_loss(dims.num_queries, distributed=world_size > 1)
    losses = loss_fn(model(batch), batch)               # losses["core_loss"] to backprop
"""
