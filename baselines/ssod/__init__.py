"""Semi-supervised object detection (SSOD) baselines on a torchvision Faster R-CNN.

* `detector`: the detector (Faster R-CNN R50-FPN at paper scale, a tiny ResNet-FPN at smoke scale) with the
  training paths the SSOD methods need (RoI sampling with reliable and uncertain pseudo-boxes, soft labels).
* `teacher`: EMA teacher update; `pseudo`: pseudo-label filtering and LabelMatch's adaptive thresholds.
* `augment`: weak / strong views with box mapping; `data`: COCO-form items -> tensors, the semi-supervised
  pair stream; `evaluate`: detections in COCO results format, scored by bench.metrics.detection.
* `methods`: supervised-only, Unbiased Teacher and LabelMatch training losses; `soft_teacher`: Soft Teacher (box
  jitter, soft background weights); `stac`: STAC (offline pseudo-labels, strong augmentation); `strong_aug`: their
  box-aware colour / geometric / cutout augmentation; `configs`: named configs;
  `train`: burn-in + semi-supervised stage through the shared loop (bench.train).
"""
