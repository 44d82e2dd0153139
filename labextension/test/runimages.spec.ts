import { isImagePath } from '../src/runimages';

describe('isImagePath', () => {
  it('takes the paths log_image records and nothing else', () => {
    expect(isImagePath('outputs/images/curve.png')).toBe(true);
    expect(isImagePath('outputs/images/curve_1.JPG')).toBe(true);
    expect(isImagePath('outputs/images/sub/plot.svg')).toBe(true);
    expect(isImagePath('outputs/tables/confusion.json')).toBe(false);
    expect(isImagePath('outputs/images/notes.txt')).toBe(false);
    expect(isImagePath('outputs/images/../../spec.png')).toBe(false);
    expect(isImagePath('logs/images/x.png')).toBe(false);
    expect(isImagePath(0.5)).toBe(false);
    expect(isImagePath(undefined)).toBe(false);
  });
});
