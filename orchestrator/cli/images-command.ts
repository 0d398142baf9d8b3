import type { Command } from 'commander';
import { buildImage, IMAGE_RECIPES, LABEL_RECIPE, recipeDigest } from '../../restore-sandboxes/images/build-image.js';
import { BackproofError } from '../core/errors.js';
import { dataDir, makeLogger, type GlobalOptions } from './context.js';
import { ensureCommand, ensureDockerEngine } from './ensure-host.js';
import { DockerRuntime } from '../../restore-sandboxes/docker/docker-runtime.js';

export function registerImages(program: Command, _setExit: (code: number) => void): void {
  const images = program.command('images').description('sandbox images');
  images
    .command('build')
    .description(`build a sandbox image from Debian packages, without a registry (mmdebstrap + docker import); kinds: ${Object.keys(IMAGE_RECIPES).join(', ')}`)
    .argument('<kind>', 'which image')
    .option('--tag <tag>', 'image tag (default backproof/<kind>:<version>)')
    .option('--if-missing', 'do nothing when the tag exists')
    .option('-y, --yes', 'install missing tools (mmdebstrap, docker.io) without asking')
    .action(async (kind: string, opts: { tag?: string; ifMissing?: boolean; yes?: boolean }, cmd: Command) => {
      const recipe = IMAGE_RECIPES[kind];
      if (!recipe) throw new BackproofError('unknown_image', `no image recipe "${kind}"; known: ${Object.keys(IMAGE_RECIPES).join(', ')}`);
      await ensureImage(kind, { ...opts, yes: Boolean(opts.yes), dataDir: dataDir(cmd.optsWithGlobals<GlobalOptions>()) });
    });
}

export async function ensureImage(kind: string, opts: { tag?: string; ifMissing?: boolean; yes: boolean; dataDir: string }): Promise<string> {
  const recipe = IMAGE_RECIPES[kind]!;
  const tag = opts.tag ?? recipe.tag;
  const logger = makeLogger();
  const runtime = new DockerRuntime();
  await ensureDockerEngine(runtime, { yes: opts.yes, logger, logDir: opts.dataDir });
  if (opts.ifMissing) {
    const info = await runtime.docker
      .getImage(tag)
      .inspect()
      .catch(() => undefined);
    const built = info?.Config?.Labels?.[LABEL_RECIPE];
    if (info && (built === recipeDigest(recipe) || (!built && !tag.startsWith('backproof/')))) {
      logger.info(`${tag} is present (${info.Id.slice(0, 19)})`);
      return tag;
    }
    if (info) logger.info(`${tag} was built from another recipe; building it again`);
  }
  await ensureCommand('mmdebstrap', 'mmdebstrap', { yes: opts.yes, logger, logDir: opts.dataDir });
  await buildImage({ docker: runtime.docker, recipe, tag, logger });
  return tag;
}
