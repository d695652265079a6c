"""The CENN study (rules/cenn.smk, baselines.smk, evaluation.smk, planck_sky.smk): the network
(:mod:`.network`), the classical baselines it is judged against (:mod:`.baselines`: pixel ILC,
harmonic ILC, ILC + Wiener filter), its comparison with Commander and SMICA on the real sky
(:mod:`.realsky`), and its figures (:mod:`.figures`)."""
