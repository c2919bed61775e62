// The scalpel command-line tool: dispatches to the commands in apps/.
#include "apps/cli.h"

int main(int argc, char** argv) { return scalpel::cli::run_main(argc, argv); }
