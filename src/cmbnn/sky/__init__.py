"""The simulated sky, one module per kind of signal: CMB theory spectra (:mod:`.theory`), Galactic
foregrounds (:mod:`.foregrounds`), point sources (:mod:`.sources`), instrument noise (:mod:`.noise`),
and the rules' sky stages built from them (:mod:`.simulate`: CMB, foreground and observed maps)."""
