from macrowatch.cli import main

main()
