"""Shadow runs: a candidate model beside the live one on a share of live frames.

The candidate's defects are never published; they are compared with the live model's frame
by frame and class by class (`compare`), saved with pictures of the disagreements (`store`),
counted for Grafana (``defectd_shadow_*``) and summed up by `defectd shadow report`
(`report`). `runner` is the thread in the inference process that does the work.
"""
