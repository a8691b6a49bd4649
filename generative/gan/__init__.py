"""GANs: DCGAN and WGAN-GP (hinge loss, spectral normalisation, two time-scales as options)."""
