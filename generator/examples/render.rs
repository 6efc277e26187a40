fn main() {
    let path = std::env::args().nth(1).expect("config path");
    let out = std::env::args().nth(2).expect("out dir");
    let cfg = coforge_generator::config::Config::load(std::path::Path::new(&path)).unwrap();
    let r = coforge_generator::artifacts::render(&cfg).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    for (f, t) in r.files() {
        std::fs::write(format!("{out}/{f}"), t).unwrap();
    }
}
