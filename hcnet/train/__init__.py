"""Training: config schema (:mod:`.config`), data (:mod:`.data`), the network of a run
(:mod:`.model`), optimizers (:mod:`.optim`), schedule (:mod:`.schedule`), checkpoints
(:mod:`.checkpoint`), local and Horovod backends (:mod:`.backend`), evaluation
(:mod:`.evaluate`) and the loop (:mod:`.loop`) made of named steps."""
