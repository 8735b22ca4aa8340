"""Metrics of the CARE / GVTNets evaluation protocol, reports and plots."""
