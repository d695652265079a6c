"""The Planck Legacy Archive: downloads (:mod:`.download`), readers that follow what each file
says (:mod:`.archive`), and archive maps brought to the simulation's conventions (:mod:`.maps`)."""
