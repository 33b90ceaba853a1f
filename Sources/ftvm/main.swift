import FTVMCLI

FTVMCommand.main()
