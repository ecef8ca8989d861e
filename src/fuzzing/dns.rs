//! The DNS codec and OE key records: a fuzzed datagram as the answer to a query the resolver
//! made (so it reaches the answer, authority and record parsers), and the record parsers on
//! raw record data. Bad input must be an error, never a panic; whatever parses must be bounded.

use std::net::{Ipv4Addr, SocketAddrV4};

use crate::dns::message::{parse_response, read_name, RrType};
use crate::dns::records::{parse_ipsec_server, parse_ipseckey, parse_key, parse_txt};
use crate::dns::{LookupId, Resolver, ResolverOutput};

/// Harness of the `dns_parse` target.
pub fn dns_parse(data: &[u8]) {
    let server = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 53), 53);
    // The resolver asks; the fuzzed datagram, with the query's ID written in, answers.
    let mut r = Resolver::new(vec![server], 0);
    let qtype = match data.first().map(|b| b % 4) {
        Some(0) => RrType::Txt,
        Some(1) => RrType::Key,
        Some(2) => RrType::Ipseckey,
        _ => RrType::Ptr,
    };
    r.lookup(0, LookupId(1), "1.2.0.192.in-addr.arpa", qtype);
    let mut wire_id = None;
    while let Some(o) = r.poll_output() {
        if let ResolverOutput::Send { data, .. } = o {
            wire_id = Some([data[0], data[1]]);
        }
    }
    if let (Some(id), true) = (wire_id, data.len() >= 2) {
        let mut d = data.to_vec();
        d[..2].copy_from_slice(&id);
        let _ = r.handle_datagram(1, server, &d);
        while let Some(o) = r.poll_output() {
            if let ResolverOutput::Done {
                result: crate::dns::Lookup::Answer(recs),
                ..
            } = o
            {
                assert!(recs.len() <= 64, "answer records are bounded");
                for rec in recs {
                    assert!(rec.rdata.len() <= d.len());
                    records(&rec.rdata);
                }
            }
        }
    }
    let _ = parse_response(data, 0, "x", RrType::Txt);
    if let Ok((name, end)) = read_name(data, 0) {
        assert!(end <= data.len() && name.len() <= 1100);
    }
    records(data);
}

fn records(rdata: &[u8]) {
    if let Ok(t) = parse_txt(rdata) {
        assert!(t.len() <= rdata.len());
        let _ = parse_ipsec_server(&t);
    }
    let _ = parse_ipsec_server(rdata);
    if let Ok(k) = parse_key(rdata) {
        assert!(!k.is_empty());
    }
    if let Ok(k) = parse_ipseckey(rdata) {
        assert!(k.key.len() < rdata.len());
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};

    /// Deterministic mutations of a good answer (and of record data) through the harness: a
    /// cheap stand-in for a fuzzing run in the normal test suite.
    #[test]
    fn mutated_answers_never_panic() {
        let name = "1.2.0.192.in-addr.arpa";
        let mut good = crate::dns::message::build_query(0, name, crate::dns::RrType::Txt).unwrap();
        good[2] = 0x81;
        good[3] = 0x80;
        good[7] = 1;
        let txt = b"\x1dX-IPsec-Server(10)=192.0.2.1\x05 AQID";
        good.extend_from_slice(&[0xc0, 12, 0, 16, 0, 1, 0, 0, 1, 0, 0, txt.len() as u8]);
        good.extend_from_slice(txt);
        let mut rng = rand::rngs::StdRng::seed_from_u64(4322);
        for _ in 0..20_000 {
            let mut d = good.clone();
            for _ in 0..rng.gen_range(1..6) {
                match rng.gen_range(0..4) {
                    0 if !d.is_empty() => {
                        let i = rng.gen_range(0..d.len());
                        d[i] = rng.gen();
                    }
                    1 if !d.is_empty() => {
                        let i = rng.gen_range(0..d.len());
                        d.truncate(i);
                    }
                    2 => {
                        let i = rng.gen_range(0..=d.len());
                        d.insert(i, rng.gen());
                    }
                    _ => d.extend((0..rng.gen_range(0..8)).map(|_| rng.gen::<u8>())),
                }
            }
            super::dns_parse(&d);
        }
    }
}
