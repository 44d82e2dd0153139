import { comparedParameters, defaultCompareMetric, lowerIsBetter, parametersLine, parseArguments, runParameters, userTags } from '../src/params';
import { makeRun } from './fixtures';

describe('parseArguments', () => {
  it('reads --name value, --name=value, flags, lists and positional words', () => {
    const p = parseArguments(['data', '--lr', '0.01', '--epochs=12', '--fast', '--sizes', '1', '2', '--name', 'resnet', '--shift', '-0.5', '-v']);
    expect(p.map(x => [x.name, x.value])).toEqual([
      ['arg1', 'data'],
      ['lr', 0.01],
      ['epochs', 12],
      ['fast', true],
      ['sizes', '1 2'],
      ['name', 'resnet'],
      ['shift', -0.5],
      ['v', true]
    ]);
  });

  it('keeps the last of a repeated option and reads words after -- as positional', () => {
    const p = parseArguments(['--lr', '1', '--lr', '2', '--', '--not-an-option']);
    expect(p.map(x => [x.name, x.value])).toEqual([
      ['lr', 2],
      ['arg1', '--not-an-option']
    ]);
  });

  it('leaves values that only look like numbers in part as text', () => {
    const p = parseArguments(['--ver', '1.2.3', '--id', '0x10', '--e', '1e-3']);
    expect(p.map(x => x.value)).toEqual(['1.2.3', '0x10', 0.001]);
  });
});

describe('runParameters', () => {
  it('adds a sweep child’s hyperparameters and logged params the arguments lack', () => {
    const run = makeRun({
      arguments: ['--lr', '0.1'],
      properties: { hyperparameters: { '--lr': 0.1, '--batch': 64 }, params: { optimizer: 'sgd', nested: { a: 1 } } }
    });
    expect(runParameters(run).map(p => [p.name, p.value, p.source])).toEqual([
      ['lr', 0.1, 'argument'],
      ['batch', 64, 'hyperparameter'],
      ['optimizer', 'sgd', 'logged'],
      ['nested', '{"a":1}', 'logged']
    ]);
  });

  it('says parameters and the user’s tags on one line, without the system’s tags', () => {
    const run = makeRun({ arguments: ['--lr', '0.1', '--fast'], tags: { display_name: 'baseline', resubmit_of: 'x_1', team: 'vision', _hidden: '1' } });
    expect(userTags(run)).toEqual([['team', 'vision']]);
    expect(parametersLine(run)).toBe('lr=0.1 fast · tags team=vision');
    expect(parametersLine(makeRun({}))).toBe('');
  });
});

describe('comparedParameters', () => {
  it('puts the parameters that differ first', () => {
    const a = makeRun({ id: 'a', arguments: ['--epochs', '5', '--lr', '0.1'] });
    const b = makeRun({ id: 'b', arguments: ['--epochs', '5', '--lr', '0.2', '--seed', '1'] });
    const { names, differing } = comparedParameters([a, b]);
    expect(names).toEqual(['lr', 'seed', 'epochs']);
    expect([...differing].sort()).toEqual(['lr', 'seed']);
  });
});

describe('compare metric', () => {
  it('defaults to the runs’ most common primary metric and knows which way is better', () => {
    const runs = [
      makeRun({ primary_metric: { name: 'loss', value: 1 } }),
      makeRun({ primary_metric: { name: 'acc', value: 1 } }),
      makeRun({ primary_metric: { name: 'acc', value: 2 } })
    ];
    expect(defaultCompareMetric(runs, ['loss', 'acc'])).toBe('acc');
    expect(defaultCompareMetric(runs, ['f1'])).toBe('f1');
    expect(lowerIsBetter('val_loss')).toBe(true);
    expect(lowerIsBetter('accuracy')).toBe(false);
  });
});
