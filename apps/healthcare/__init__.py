"""dl-health: disease prediction, medical image segmentation, personalised treatment."""
