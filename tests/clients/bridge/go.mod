module vibee-sessions/bridge-test

go 1.19
