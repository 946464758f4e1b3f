"""Supra: train and evaluate small captioning and any-to-any models (README.md)."""

from supra.utils.start_up import quiet_ctrl_c_while_starting

quiet_ctrl_c_while_starting()  # only in a process started as a Supra command: Ctrl-C while it starts is one line
