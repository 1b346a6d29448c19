from macrowatch.commands.cli import main

main()
