import t from 'tap'
import { parseManifest, WARM_MANIFEST, warmManifestParser } from './manifest.js'

t.test('the warm-up manifest passes the schema, so the warm-up compiles the path a real manifest takes', async t => {
  t.same(parseManifest(structuredClone(WARM_MANIFEST)), WARM_MANIFEST)
  t.doesNotThrow(() => warmManifestParser())
})
