"""Tasks: LightningModules that own the step logic of one kind of learning problem."""
