"""The bottom layer: run configuration, user errors with did-you-mean, cache paths, small file and process
helpers. Imports nothing else from edgeadapt."""

# Every edgeadapt module imports the core before it could import PEFT (which imports bitsandbytes, whose
# import would fetch a CPU kernel from the Hub): keep that one lookup local and quiet.
from edgeadapt.core.hub_kernels import keep_bitsandbytes_off_the_hub

keep_bitsandbytes_off_the_hub()
