"""Judging maps and patches, whatever made them: flat-sky Fourier and beam helpers (:mod:`.flatsky`),
NaMaster bandpowers (:mod:`.powspec`), pixel metrics (:mod:`.metrics`), Minkowski functionals
(:mod:`.minkowski`), the exact Gaussian conditional mean and constrained realisations
(:mod:`.gaussian_field`), and the tables and summaries the rules write (:mod:`.evaluation`)."""
