// Validates prometheus-operator resources (PodMonitor, PrometheusRule, ...)
// against the CRD schemas packaged by @kubernetes-models/prometheus-operator.
import fs from "fs";
import * as yaml from "js-yaml";
import * as models from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";
let failed = 0;
for (const file of process.argv.slice(2)) {
  for (const doc of yaml.loadAll(fs.readFileSync(file, "utf8"))) {
    if (!doc || doc.apiVersion !== "monitoring.coreos.com/v1") continue;
    const Model = models[doc.kind];
    if (!Model) { console.log(`ERROR ${file}: no schema for ${doc.kind}`); failed++; continue; }
    try {
      new Model(doc).validate();
      console.log(`PASSED ${file}: ${doc.kind}/${doc.metadata.name}`);
    } catch (e) {
      console.log(`ERROR ${file}: ${doc.kind}/${doc.metadata.name}: ${e.message}`);
      failed++;
    }
  }
}
process.exit(failed ? 1 : 0);
