"""The dust study (rules/dustvae.smk): the simulated and Planck dust skies cut into patches
(:mod:`.sky`), the dust VAE with its beta and conditional variants (:mod:`.vae`: sample, impute,
interpolate), the statistics that compare generated and real dust (:mod:`.statistics`), and its
figures (:mod:`.figures`)."""
