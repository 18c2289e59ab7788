from bruno_cli.main import main

main()
