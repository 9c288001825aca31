import DistilleryCLI

Distill.main()
