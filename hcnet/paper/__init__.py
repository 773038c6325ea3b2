"""The papers' numbers and their reproduction: Tables 1-7 rows (:mod:`.reference`),
the small-network baselines (:mod:`.baselines`), IR-Net's Table 4 (:mod:`.irnet_table4`),
measured-vs-paper checks (:mod:`.reproduce`) and table rendering (:mod:`.tables`)."""
