from lassbench.cli import main

main()
