"""The bottom layer: run configuration, user errors with did-you-mean, cache paths, small file and process
helpers. Imports nothing else from edgeadapt."""
