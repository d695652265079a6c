"""Flat-sky patches: which sky each split owns and where patches sit (:mod:`.sets`), cutting every
field of the observed sky into patches (:mod:`.cutting`), and putting patches back on the sphere
(:mod:`.reassembly`)."""
