import Gateway
import Glibc

// The `gateway` executable: everything it does lives in the Gateway library, which the tests
// and the fuzz targets import too.
exit(runCommand(CommandLine.arguments))
