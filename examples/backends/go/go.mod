module tilegate-backend-sample

go 1.19
