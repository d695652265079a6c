"""What every network of the three studies shares: the resumable training loop, patch batches
read from HDF5, dihedral augmentation, seeds and devices (:mod:`.training`), and streamed
per-channel moments and data fingerprints of the training sets (:mod:`.data`)."""
