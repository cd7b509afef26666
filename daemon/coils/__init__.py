"""Coils: defects on the strip, gathered per coil, graded (issue 15).

- `model`: the records (a strip defect, a coverage gap, a closed coil) that the tracker makes,
  the store keeps and the reports read;
- `merge`: regions of one frame after another, and of neighbouring cameras, joined into strip
  defects;
- `tracker`: coils opened and closed from the frames' coil ids, their counts, coverage gaps
  and grade;
- `grading`: the grade rules of the config.
"""
