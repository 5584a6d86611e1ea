use std::time::Instant;
fn main() {
    let p = "/work/shared/data/gpt2-tokenizer/tokenizer.json";
    for _ in 0..3 {
        let t = Instant::now();
        let s = std::fs::read_to_string(p).unwrap();
        let t1 = t.elapsed();
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        let t2 = t.elapsed();
        drop(v);
        let tok = rg_tokenize::BpeTokenizer::from_tokenizer_json(p).unwrap();
        let t3 = t.elapsed();
        drop(tok);
        let t4 = t.elapsed();
        println!(
            "read {t1:?} parse {:?} full load {:?} drop {:?}",
            t2 - t1,
            t3 - t2,
            t4 - t3
        );
    }
}
