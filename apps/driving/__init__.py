"""dl-drive: perception and decision making in the highway-env simulator."""
