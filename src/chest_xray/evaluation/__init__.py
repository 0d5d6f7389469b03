"""The evaluation room, 07_model_output -> 08_reporting: metrics, thresholds, figures, Grad-CAM.

Metrics and the report (``metrics``), the threshold chosen on validation
(``thresholds``), prior shift, calibration, multi-class metrics, bootstrap intervals,
statistics over folds, the figures, and Grad-CAM (``gradcam``, ``gradcam_network``,
``gradcam_gallery``). Nothing here imports Kedro or MLflow; Keras only inside Grad-CAM,
on first use."""
