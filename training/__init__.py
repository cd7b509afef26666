"""Model definition, datasets, losses and the train / tune / export loops (needs defectd[train])."""
