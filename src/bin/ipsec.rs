//! The `ipsec` command (see `rswan::cli`).

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(rswan::cli::main(args));
}
