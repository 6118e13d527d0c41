"""The neural side (torch): the networks (`models`), the diffusion samplers and losses
(`diffusion`), training from recipes (`train`), export to ONNX + model cards (`export`),
temperature calibration (`calibration`) and the Fashion-MNIST classifier behind the accuracy
and FID-FMNIST metrics (`classifier`). Importing this package imports no torch; its modules do."""
