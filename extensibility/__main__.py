from extensibility.cli import console_main

console_main()
